#!/bin/sh
# make deploy STAGE=dev: the packaged stack (make package) into the current AWS account.
#
#   STAGE           Chalice stage (.chalice/config.json)              default dev
#   STACK_NAME      CloudFormation stack                              default rlayer-$STAGE
#   DEPLOY_BUCKET   bucket for the code and build scripts             default
#                   rlayer-deploy-<account>-<region>, created (private, encrypted) if missing
#   PARAMETERS      extra `Key=Value` stack parameters, space-separated (e.g. LogRetentionDays=90);
#                   Ec2VpcId=vpc-... for the EC2 builds' security group (default: the
#                   account's default VPC)
#   AWS_REGION / AWS_DEFAULT_REGION / the CLI profile's region        where to deploy
#
# Needs the AWS CLI and credentials allowed what README.md ("Deploy to AWS") lists.
set -eu

die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

STAGE=${STAGE:-dev}
STACK_NAME=${STACK_NAME:-rlayer-$STAGE}
OUT=${OUT:-out/$STAGE}
PARAMETERS=${PARAMETERS:-}

# Physical names derive from the stack name (state machine, CodeBuild projects, canary
# functions, log groups) and the roles' policies are scoped by it; keep it short enough
# that "<stack>-canary-<suffix>" stays within Lambda's 64 characters.
printf '%s\n' "$STACK_NAME" | grep -Eqx '[a-z][a-z0-9-]{0,27}' ||
  die "STACK_NAME must be 1-28 lowercase letters, digits or '-', starting with a letter"
command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is not installed"
for f in sam.json deployment.zip build-source.zip; do
  [ -f "$OUT/$f" ] || die "$OUT/$f is missing: run make package STAGE=$STAGE first"
done

region=${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}
[ -n "$region" ] || die "no region: set AWS_REGION or configure one for the CLI"
export AWS_DEFAULT_REGION="$region"
account=$(aws sts get-caller-identity --query Account --output text) ||
  die "no usable AWS credentials"
DEPLOY_BUCKET=${DEPLOY_BUCKET:-rlayer-deploy-$account-$region}

if ! aws s3api head-bucket --bucket "$DEPLOY_BUCKET" >/dev/null 2>&1; then
  printf 'creating s3://%s\n' "$DEPLOY_BUCKET"
  if [ "$region" = us-east-1 ]; then
    aws s3api create-bucket --bucket "$DEPLOY_BUCKET" >/dev/null
  else
    aws s3api create-bucket --bucket "$DEPLOY_BUCKET" \
      --create-bucket-configuration "LocationConstraint=$region" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$DEPLOY_BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  aws s3api put-bucket-encryption --bucket "$DEPLOY_BUCKET" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
fi

# The EC2 builds' security group lives in a VPC: the default one unless PARAMETERS names one.
case " $PARAMETERS " in
  *" Ec2VpcId="*) ;;
  *)
    vpc=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true \
      --query 'Vpcs[0].VpcId' --output text) || die "cannot look up the default VPC"
    case "$vpc" in
      vpc-*) PARAMETERS="$PARAMETERS Ec2VpcId=$vpc" ;;
      *) die "no default VPC in $region: set PARAMETERS=\"Ec2VpcId=vpc-... Ec2SubnetId=subnet-...\"" ;;
    esac
    ;;
esac

# Content-addressed: new build scripts give a new key, so CloudFormation updates the
# CodeBuild projects; unchanged scripts leave them alone.
digest=$(sha256sum "$OUT/build-source.zip" | cut -c1-16)
source_key="$STACK_NAME/build-source-$digest.zip"
aws s3 cp --only-show-errors "$OUT/build-source.zip" "s3://$DEPLOY_BUCKET/$source_key"

aws cloudformation package \
  --template-file "$OUT/sam.json" \
  --s3-bucket "$DEPLOY_BUCKET" \
  --s3-prefix "$STACK_NAME" \
  --output-template-file "$OUT/packaged.yaml" >/dev/null

# shellcheck disable=SC2086 # PARAMETERS is a list of Key=Value words on purpose
aws cloudformation deploy \
  --template-file "$OUT/packaged.yaml" \
  --stack-name "$STACK_NAME" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --no-fail-on-empty-changeset \
  --tags "rlayer:stage=$STAGE" \
  --parameter-overrides "BuildSourceBucket=$DEPLOY_BUCKET" "BuildSourceKey=$source_key" $PARAMETERS

# The stage's other regions (REGIONS in .chalice/config.json): a staging bucket each, in a
# stack of its own there (CloudFormation is regional). Removing a region from the list
# leaves its stack: delete it as "Removing it" in README.md says.
others=$(python3 -m deploy.regional "$STAGE" "$region")
if [ -n "$others" ]; then
  artifact_bucket=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
    --query "Stacks[0].Outputs[?OutputKey=='ArtifactBucketName'].OutputValue" --output text)
  for other in $others; do
    aws cloudformation deploy --region "$other" \
      --template-file deploy/regional.yml \
      --stack-name "$STACK_NAME-staging" \
      --no-fail-on-empty-changeset \
      --tags "rlayer:stage=$STAGE" \
      --parameter-overrides "ArtifactBucketName=$artifact_bucket"
  done
fi

aws cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output table
