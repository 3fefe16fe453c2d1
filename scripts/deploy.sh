#!/usr/bin/env bash
# Deploys the MSP Intelligence Mesh to AWS: builds the Lambda `bootstrap`, deploys
# lambda/deploy/template.yaml with SAM, then publishes the model bundle to the stack's models
# bucket (the functions sync it into /tmp at their next cold start), and uploads the dashboard
# (web/ plus a config.json of the stack's URLs) to the frontend bucket.
#
# Usage:
#   ALERT_EMAIL=ops@example.com scripts/deploy.sh [--skip-build] [--skip-bundle]
#
# Environment (defaults in brackets):
#   ALERT_EMAIL      required on the first deploy: alerts, alarms and budget notifications
#   ARCH             arm64 | x86_64 [arm64]  (arm64 needs `rustup target add aarch64-unknown-linux-gnu`)
#   STACK_NAME       [msp-intelligence-mesh]
#   STAGE            REST API stage [prod]
#   MODELS_PREFIX    key prefix of the bundle in the models bucket [bundle]
#   BUDGET_USD       monthly budget [100]
#   AWS_REGION       region [the AWS CLI's configured region]
#   SAM_PARAMETERS   extra `Key=Value` overrides, space-separated (e.g. "CorsAllowOrigin=https://app.example.com")
#   MSP_MESH         command that runs msp-mesh [cargo run --release --features aws --bin msp-mesh --]
#
# Needs: cargo with cargo-lambda (`cargo lambda`; scripts/aws_tools.sh installs it into
# target/tools/aws), the AWS SAM CLI (`sam`), the AWS CLI (`aws`), and AWS credentials.
# --skip-build deploys the existing target/lambda/bootstrap/bootstrap; --skip-bundle does not
# run `msp-mesh prepare` / `msp-mesh bundle push`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ARCH="${ARCH:-arm64}"
STACK_NAME="${STACK_NAME:-msp-intelligence-mesh}"
STAGE="${STAGE:-prod}"
MODELS_PREFIX="${MODELS_PREFIX:-bundle}"
BUDGET_USD="${BUDGET_USD:-100}"
SAM_PARAMETERS="${SAM_PARAMETERS:-}"
TEMPLATE=lambda/deploy/template.yaml
BOOTSTRAP=target/lambda/bootstrap/bootstrap

skip_build=false
skip_bundle=false
for arg in "$@"; do
    case "$arg" in
        --skip-build) skip_build=true ;;
        --skip-bundle) skip_bundle=true ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "deploy: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

die() { echo "deploy: $*" >&2; exit 1; }

case "$ARCH" in
    arm64) build_arch=(--arm64) ;;
    x86_64) build_arch=(--x86-64) ;;
    *) die "ARCH must be arm64 or x86_64, not '$ARCH'" ;;
esac

# cargo-lambda as installed by scripts/aws_tools.sh, when it is there.
if [[ -x target/tools/aws/bin/cargo-lambda ]]; then
    PATH="$ROOT/target/tools/aws/bin:$PATH"
fi

command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is not installed; install the awscli package and configure credentials"
command -v sam >/dev/null 2>&1 || die "the AWS SAM CLI (sam) is not installed; install the aws-sam-cli package (pip install aws-sam-cli)"
if [[ "$skip_build" == false ]]; then
    cargo lambda --version >/dev/null 2>&1 \
        || die "cargo lambda is not available; run scripts/aws_tools.sh or install the cargo-lambda package (pip install cargo-lambda)"
fi

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region || true)}}"
[[ -n "$REGION" ]] || die "no AWS region: set AWS_REGION"
aws sts get-caller-identity --region "$REGION" >/dev/null || die "no usable AWS credentials"

stack_exists() {
    aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK_NAME" >/dev/null 2>&1
}
if [[ -z "${ALERT_EMAIL:-}" ]] && ! stack_exists; then
    die "ALERT_EMAIL is required for the first deploy of $STACK_NAME"
fi

# 1. Build.
if [[ "$skip_build" == false ]]; then
    echo "deploy: cargo lambda build --release --features aws --bin bootstrap ${build_arch[*]}" >&2
    cargo lambda build --release --features aws --bin bootstrap "${build_arch[@]}"
fi
[[ -x "$BOOTSTRAP" ]] || die "$BOOTSTRAP is missing; build it (drop --skip-build)"

# 2. Deploy the stack.
overrides=("Architecture=$ARCH" "Stage=$STAGE" "ModelsPrefix=$MODELS_PREFIX" "MonthlyBudgetUsd=$BUDGET_USD")
if [[ -n "${ALERT_EMAIL:-}" ]]; then
    overrides+=("AlertEmail=$ALERT_EMAIL")
fi
if [[ -n "$SAM_PARAMETERS" ]]; then
    read -r -a extra <<<"$SAM_PARAMETERS"
    overrides+=("${extra[@]}")
fi
echo "deploy: sam deploy $STACK_NAME ($REGION, $ARCH)" >&2
sam deploy \
    --template-file "$TEMPLATE" \
    --stack-name "$STACK_NAME" \
    --region "$REGION" \
    --resolve-s3 \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --no-confirm-changeset \
    --no-fail-on-empty-changeset \
    --parameter-overrides "${overrides[@]}"

output() {
    aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK_NAME" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

# 3. Publish the model bundle to the bucket the stack created.
model_source="$(output ModelSource)"
[[ "$model_source" == s3://* ]] || die "stack output ModelSource is '$model_source', expected s3://..."
if [[ "$skip_bundle" == false ]]; then
    read -r -a msp_mesh <<<"${MSP_MESH:-cargo run --release --features aws --bin msp-mesh --}"
    # The encoder the template's functions serve (its Globals' MESH_EMBED_MODEL).
    encoder="$(sed -n 's/^ *MESH_EMBED_MODEL: *//p' "$TEMPLATE" | head -n 1)"
    encoder="${encoder:-all-minilm-l6-v2}"
    echo "deploy: msp-mesh prepare && msp-mesh bundle push --model $encoder $model_source" >&2
    "${msp_mesh[@]}" prepare
    AWS_REGION="$REGION" "${msp_mesh[@]}" bundle push --model "$encoder" "$model_source"
fi

# 4. The dashboard: web/'s files and a config.json with this stack's API and WebSocket URLs.
frontend="$(output FrontendBucketName)"
web_config="$(mktemp)"
printf '{"api_base": "%s", "ws_url": "%s"}\n' "$(output RestApiUrl)" "$(output WebSocketUrl)" >"$web_config"
echo "deploy: dashboard to s3://$frontend" >&2
for f in index.html app.js charts.js dom.js forms.js style.css examples.json; do
    aws s3 cp --region "$REGION" --only-show-errors "web/$f" "s3://$frontend/$f"
done
aws s3 cp --region "$REGION" --only-show-errors --content-type application/json "$web_config" "s3://$frontend/config.json"
rm -f "$web_config"

cat >&2 <<EOF
deploy: done
  REST API   $(output RestApiUrl)
  WebSocket  $(output WebSocketUrl)
  API key    aws secretsmanager get-secret-value --region $REGION --secret-id msp-intelligence/api-key --query SecretString --output text
             (x-api-key on the REST API; ?api_key= on the WebSocket, checked by msp-websocket-authorizer)
  models     $model_source
  dashboard  $(output FrontendUrl) (CloudFront over the private bucket s3://$frontend; API key in its Settings page)
EOF
