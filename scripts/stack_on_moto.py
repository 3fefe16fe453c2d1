#!/usr/bin/env python3
"""Stands the deployment template up on moto's CloudFormation, offline.

    target/tools/aws/bin/python scripts/stack_on_moto.py ENDPOINT [TEMPLATE] > stack.json

1. Translates the SAM template to plain CloudFormation with `aws-sam-translator` (the code is a
   stand-in zip at s3://mesh-code/bootstrap.zip: the functions are run by the caller, not by
   moto).
2. Leaves out the resources of the types moto's CloudFormation cannot create, and turns every
   reference to them into a placeholder string; `SKIPPED_TYPES` says how each is covered
   instead. The secret's dynamic reference becomes a fixed test key.
3. Creates the stack on the moto server at ENDPOINT and prints JSON: the stack's outputs, each
   function's name and environment as moto resolved them from the template (table, bucket and
   queue names of this stack), the physical id of every resource, and the skipped resources.

Exit status 1, with moto's reason, when the stack does not reach CREATE_COMPLETE.
"""
import io
import json
import os
import re
import sys
import time
import zipfile

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_BUCKET = "mesh-code"
STACK = "msp-intelligence-mesh"
# The stand-in API key of the test stack (the template generates one in Secrets Manager).
TEST_API_KEY = "test-key-0123456789"
# What moto's CloudFormation cannot create, and what covers each instead.
SKIPPED_TYPES = {
    "AWS::ApiGateway::Account": "account-wide logging role; nothing the code reads",
    "AWS::ApiGateway::ApiKey": "the REST API key: the functions run with MESH_AUTH=off behind API Gateway; the key check is covered by mesh_http's protection tests",
    "AWS::ApiGateway::Deployment": "moto does not import the OpenAPI body's methods; the test invokes each function with API Gateway events instead",
    "AWS::ApiGateway::Stage": "routing by API Gateway: the test invokes each function with API Gateway events",
    "AWS::ApiGateway::UsagePlan": "throttling and quota by API Gateway: covered by the rate-limit tests of the server",
    "AWS::ApiGateway::UsagePlanKey": "see ApiKey",
    "AWS::ApiGatewayV2::Api": "the WebSocket API: its function is invoked with WebSocket events, pushes go to the management API stand-in",
    "AWS::ApiGatewayV2::Authorizer": "the $connect authorizer function is invoked directly (lambda_watch)",
    "AWS::ApiGatewayV2::Integration": "see ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Route": "see ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage": "see ApiGatewayV2::Api",
    "AWS::Budgets::Budget": "billing only",
    "AWS::CloudFront::Distribution": "the dashboard's CDN: the dashboard is tested in Chromium against the local server (web_e2e.sh); cfn-lint checks the distribution",
    "AWS::CloudFront::OriginAccessControl": "see CloudFront::Distribution",
    "AWS::CloudWatch::Alarm": "monitoring only; cfn-lint checks them",
    "AWS::Lambda::Alias": "provisioned concurrency of the live alias; the function itself is created",
    "AWS::S3::BucketPolicy": "TLS-only and CloudFront-only reads; cfn-lint checks them",
    "AWS::SNS::TopicPolicy": "who may publish alerts; the EventBridge route is tested in aws_backends",
    "AWS::SecretsManager::Secret": "the generated API key: a fixed test key stands in",
}
# A DynamoDB stream's event source mapping: moto hands each stream record to its own Lambda
# (which needs Docker) and then drops it from the stream; without the mapping the records stay
# for the test, which gives them to the broadcaster function as the mapping would.
STREAM_MAPPING = "AWS::Lambda::EventSourceMapping"
STREAM_MAPPING_COVERED_BY = "the test reads the event log's stream and invokes the broadcaster with the batch, as the mapping would (lambda_watch)"


def skip_reason(resource):
    """Why moto cannot stand `resource` up (and what covers it), or None."""
    kind = resource["Type"]
    if kind == STREAM_MAPPING:
        source = resource.get("Properties", {}).get("EventSourceArn")
        if isinstance(source, dict) and "StreamArn" in str(source.get("Fn::GetAtt", "")):
            return STREAM_MAPPING_COVERED_BY
        return None
    return SKIPPED_TYPES.get(kind)


def sam_to_cloudformation(template_path):
    template = yaml_parse(open(template_path).read())
    template["Globals"]["Function"]["CodeUri"] = f"s3://{CODE_BUCKET}/bootstrap.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(template, {}, NoManagedPolicies())


def without_unsupported(cfn):
    resources = cfn["Resources"]
    skipped = {n: r["Type"] for n, r in resources.items() if skip_reason(r)}
    reasons = {n: skip_reason(r) for n, r in resources.items() if skip_reason(r)}
    # A reference to a function's alias stands for the function.
    aliases = {n: resources[n]["Properties"]["FunctionName"]
               for n, t in skipped.items() if t == "AWS::Lambda::Alias"}

    def clean(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in aliases:
                return aliases[node["Ref"]]
            if set(node) == {"Ref"} and node["Ref"] in skipped:
                return f"skipped:{node['Ref']}"
            if set(node) == {"Fn::GetAtt"}:
                target = node["Fn::GetAtt"]
                name = target[0] if isinstance(target, list) else target.split(".")[0]
                if name in skipped:
                    return f"skipped:{name}"
            if set(node) == {"Fn::Sub"}:
                sub = node["Fn::Sub"]
                text = sub if isinstance(sub, str) else sub[0]
                for name in skipped:
                    text = re.sub(r"\$\{%s(\.[A-Za-z0-9.]+)?\}" % name, f"skipped-{name}", text)
                if "{{resolve:secretsmanager:" in text:
                    return TEST_API_KEY
                return {"Fn::Sub": text if isinstance(sub, str) else [text, clean(sub[1])]}
            return {k: clean(v) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    kept = {n: clean(r) for n, r in resources.items() if n not in skipped}
    for resource in kept.values():
        depends = resource.get("DependsOn")
        if isinstance(depends, list):
            resource["DependsOn"] = [d for d in depends if d not in skipped]
        elif isinstance(depends, str) and depends in skipped:
            del resource["DependsOn"]
    cfn["Resources"] = kept
    cfn["Outputs"] = clean(cfn.get("Outputs", {}))
    return cfn, skipped, reasons


def main():
    endpoint = sys.argv[1]
    template = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "lambda/deploy/template.yaml")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="AKIDMOTO", aws_secret_access_key="moto-secret")
    cfn, skipped, reasons = without_unsupported(sam_to_cloudformation(template))
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket=CODE_BUCKET)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "run by the test, not by moto\n")
    s3.put_object(Bucket=CODE_BUCKET, Key="bootstrap.zip", Body=code.getvalue())
    cf = boto3.client("cloudformation", **kw)
    cf.create_stack(
        StackName=STACK, TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": "AlertEmail", "ParameterValue": "ops@example.com"}],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    for _ in range(120):
        stack = cf.describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        print(f"stack_on_moto: {stack['StackStatus']}: {stack.get('StackStatusReason')}", file=sys.stderr)
        sys.exit(1)
    resources = {
        r["LogicalResourceId"]: {"type": r["ResourceType"], "physical_id": r.get("PhysicalResourceId")}
        for r in cf.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    }
    lam = boto3.client("lambda", **kw)
    functions = {}
    for name, r in resources.items():
        if r["type"] == "AWS::Lambda::Function":
            config = lam.get_function_configuration(FunctionName=r["physical_id"])
            functions[name] = {
                "function_name": config["FunctionName"],
                "memory_mb": config.get("MemorySize"),
                "env": config.get("Environment", {}).get("Variables", {}),
            }
    json.dump({
        "outputs": {o["OutputKey"]: o.get("OutputValue") for o in stack.get("Outputs", [])},
        "functions": functions,
        "resources": resources,
        "skipped": {n: {"type": t, "covered_by": reasons[n]} for n, t in sorted(skipped.items())},
    }, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
