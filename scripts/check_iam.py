#!/usr/bin/env python3
"""Least privilege: fails when the deployment template grants an AWS action the code never calls.

    target/tools/cfn-lint/bin/python scripts/check_iam.py [TEMPLATE]

(scripts/lint_template.sh runs it with cfn-lint's interpreter, whose YAML loader reads the
template's intrinsic functions.)

The code's calls: every AWS SDK operation named in the service's Rust sources (`.put_item()`,
`.get_object()`, ...), mapped to its IAM action, plus the actions a call needs implicitly
(`s3:ListBucket`, so that a missing object reads as 404, not 403: a prefix without a bundle).
The grants: every statement of every function's `Policies` (inline statements, the template's
managed policies, and SAM policy templates expanded to the actions SAM puts in them).

Fails (exit 1) listing each function and action granted but never called, and each action the
code calls that no function is granted (unless it is only called from the operator's side:
tests, `bundle push`, the fan-out driver). Prints a per-function table otherwise.
"""
import pathlib
import re
import sys

import cfnlint.decode.cfn_yaml as cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ["lambda/src", "lambda/core/src", "inference/src", "inference/cloud/src", "agents/src"]

# SDK operation (Rust method) -> IAM action.
OPERATIONS = {
    "dynamodb": {
        "put_item": "PutItem", "get_item": "GetItem", "query": "Query", "scan": "Scan",
        "update_item": "UpdateItem", "delete_item": "DeleteItem", "create_table": "CreateTable",
        "batch_write_item": "BatchWriteItem", "batch_get_item": "BatchGetItem",
        "describe_table": "DescribeTable",
        # IAM has no action of that name: a transaction's writes are authorised as the
        # underlying operations, and the code's transactions hold only `Put`s.
        "transact_write_items": "PutItem",
    },
    "s3": {
        "get_object": "GetObject", "head_object": "GetObject", "put_object": "PutObject",
        "list_objects_v2": "ListBucket", "delete_object": "DeleteObject",
        "create_multipart_upload": "PutObject", "upload_part": "PutObject",
        "complete_multipart_upload": "PutObject",
    },
    "sqs": {"send_message": "SendMessage", "receive_message": "ReceiveMessage",
            "delete_message": "DeleteMessage"},
    "kinesis": {"put_records": "PutRecords", "put_record": "PutRecord"},
    "events": {"put_events": "PutEvents"},
    "execute-api": {"post_to_connection": "ManageConnections", "delete_connection": "ManageConnections"},
    "bedrock": {"invoke_model": "InvokeModel", "converse": "InvokeModel"},
    "comprehend": {"detect_sentiment": "DetectSentiment", "detect_entities": "DetectEntities",
                   "detect_key_phrases": "DetectKeyPhrases"},
    "lambda": {"invoke": "InvokeFunction"},
}
# Which crate's client a Rust source file uses, by the SDK crate it names.
CRATES = {
    "aws_sdk_dynamodb": "dynamodb", "aws_sdk_s3": "s3", "aws_sdk_sqs": "sqs",
    "aws_sdk_kinesis": "kinesis", "aws_sdk_eventbridge": "events",
    "aws_sdk_apigatewaymanagement": "execute-api", "aws_sdk_bedrockruntime": "bedrock",
    "aws_sdk_comprehend": "comprehend", "aws_sdk_lambda": "lambda",
}
# Needed without a call of their own name.
IMPLICIT = {"s3:ListBucket"}
# Called only on the operator's side (tests' setup, `msp-mesh bundle push`, the fan-out driver,
# the Kinesis sink no function of the template configures): need no grant.
OPERATOR_SIDE = {"dynamodb:CreateTable", "lambda:InvokeFunction", "kinesis:PutRecords",
                 # `msp-mesh worker` outside Lambda; on Lambda the SQS event source mapping
                 # receives and deletes (SAM grants it with the event, not in `Policies`).
                 "sqs:ReceiveMessage", "sqs:DeleteMessage"}
# SAM policy templates: the actions SAM expands them to.
SAM_TEMPLATES = {
    "DynamoDBCrudPolicy": ["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem",
                           "dynamodb:Scan", "dynamodb:Query", "dynamodb:UpdateItem",
                           "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
                           "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"],
    "DynamoDBReadPolicy": ["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query",
                           "dynamodb:BatchGetItem", "dynamodb:DescribeTable"],
    "S3CrudPolicy": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation",
                     "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectAcl",
                     "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                     "s3:DeleteObject"],
    "S3ReadPolicy": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation",
                     "s3:GetObjectVersion", "s3:GetLifecycleConfiguration"],
    "SQSSendMessagePolicy": ["sqs:SendMessage*"],
    "EventBridgePutEventsPolicy": ["events:PutEvents"],
}


def used_actions():
    used = set(IMPLICIT)
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.rs"):
            text = path.read_text()
            services = {svc for crate, svc in CRATES.items() if crate in text}
            # A file that takes a client from elsewhere still names the crate in its imports or
            # types; files without one make no SDK call.
            for svc in services:
                for method, action in OPERATIONS[svc].items():
                    if re.search(r"\.%s\(\)" % method, text):
                        used.add(f"{svc}:{action}")
    return used


def as_list(value):
    return value if isinstance(value, list) else [value]


def statement_actions(statements):
    actions = []
    for st in as_list(statements):
        if st.get("Effect") == "Allow":
            actions += [str(a) for a in as_list(st.get("Action", []))]
    return actions


def granted_actions(resources, policies):
    actions = []
    for policy in policies or []:
        if isinstance(policy, str):
            raise SystemExit(f"check_iam: managed policy by name `{policy}` cannot be checked")
        if "Ref" in policy:
            managed = resources[policy["Ref"]]
            actions += statement_actions(managed["Properties"]["PolicyDocument"]["Statement"])
        elif "Statement" in policy:
            actions += statement_actions(policy["Statement"])
        else:
            (name,) = policy.keys()
            if name not in SAM_TEMPLATES:
                raise SystemExit(f"check_iam: unknown SAM policy template {name}")
            actions += SAM_TEMPLATES[name]
    return actions


def main():
    template = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "lambda/deploy/template.yaml"
    resources = cfn_yaml.load(str(template))["Resources"]
    used = used_actions()
    failures, granted_anywhere = [], set()
    print("| function | actions granted |")
    print("|---|---|")
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        actions = sorted(set(granted_actions(resources, resource["Properties"].get("Policies"))))
        granted_anywhere.update(actions)
        print(f"| {name} | {', '.join(actions) or '-'} |")
        for action in actions:
            if "*" in action:
                failures.append(f"{name}: `{action}` is a wildcard")
            elif action not in used:
                failures.append(f"{name}: `{action}` is granted, and the code never calls it")
    for action in sorted(used - granted_anywhere - OPERATOR_SIDE):
        failures.append(f"the code calls `{action}`, and no function is granted it")
    if failures:
        print("\ncheck_iam: least privilege fails:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"\ncheck_iam: every granted action is one the code calls ({len(used)} used)")


if __name__ == "__main__":
    main()
