#!/bin/sh
# The baseline for bench/runtime: the Lambda bootstrap of the wiki page this project started
# from (seed document 001_2a648aade82f052a, "Bootstrap" section), copied as it is given
# there: curl for each Runtime API call and one Rscript start per event. Only these
# comment lines were added.

# uncomment the following to stop execution on first error
#set -euo pipefail

# we will add python dependencies here later
export PYTHONPATH=/opt/python

# Initialization - load function handler
SCRIPT=$LAMBDA_TASK_ROOT/$(echo "$_HANDLER" | cut -d. -f1).r

while true
do
    # Get an event
    HEADERS="$(mktemp)"
    EVENT_DATA=$(curl -sS -LD "$HEADERS" -X GET "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")
    REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

    echo "About to run $SCRIPT"
    # Execute the handler function from the script
    RESULT=$(mktemp)
    /opt/R/bin/Rscript $SCRIPT
    RESPONSE="OK"

    # Send the response
    curl -X POST "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response"  -d "$RESPONSE"
done
