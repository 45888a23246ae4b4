#!/bin/sh
# The buildspec phases on an EC2 build instance, as CodeBuild runs buildspec.yml: each
# command with `sh -c` from the source's root, in order; the first failure ends the build.
# The user data (chalicelib/builders/ec2_user_data.sh) runs this script. The phase running
# now goes to RLAYER_PHASE_FILE and a failure's reason to RLAYER_REASON_FILE: the status
# object names them. tests/unit/test_ec2_user_data.py holds these lines to buildspec.yml.
set -u
cd "$(dirname -- "$0")/.." || exit 1
PHASES='install|sh buildspec/install-deps.sh
pre_build|sh buildspec/prepare.sh
build|sh buildspec/build-runtime.sh
build|sh buildspec/build-packages.sh
post_build|[ "${CODEBUILD_BUILD_SUCCEEDING:-1}" = 1 ] && sh buildspec/upload.sh'

printf '%s\n' "$PHASES" | {
  while IFS='|' read -r phase command; do
    printf '%s\n' "$phase" >"${RLAYER_PHASE_FILE:-/dev/null}"
    printf '[rlayer-ec2] phase %s: %s\n' "$phase" "$command"
    sh -c "$command" </dev/null
    code=$?
    if [ "$code" -ne 0 ]; then
      printf 'phase %s: `%s` exited with status %s\n' "$phase" "$command" "$code" \
        >"${RLAYER_REASON_FILE:-/dev/null}"
      exit 1
    fi
  done
}
