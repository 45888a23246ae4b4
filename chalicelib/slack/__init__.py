"""The Slack slash command: verification, parsing, replies and the final message.

config     signing secret, bot token and allow-lists (environment or a stored secret)
verify     the v0 request signature (slack_sdk) and the replay guard
commands   command text -> the same validated models as the HTTP API
messages   every text rlayer shows in Slack (mrkdwn, escaped)
handler    one verified request -> one reply
notifier   the build's final message, posted by the state machine's Notify step
"""
