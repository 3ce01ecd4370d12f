#!/usr/bin/env python3
"""Deploys hookrelay into an AWS account: `make deploy` runs this with the pinned tools.

Steps, in order:
  1. the template parameters (samconfig.toml's, then PARAMS) checked against the template's
     constraints and against the rules between them the functions enforce at start-up;
  2. `sam validate --lint` and `sam build`;
  3. AWS credentials (STS GetCallerIdentity), in the chosen region;
  4. the admin key: an SSM SecureString parameter in that region, created when missing
     (CloudFormation cannot create SecureStrings), kept when present;
  5. `sam deploy`, unattended;
  6. the stack's outputs, and the commands that create a first source.

`--check` runs steps 1 and 2 and stops before the first AWS call: CI runs it, offline.
`--check-readme` also checks every `make deploy` command of the README's walk-through.

boto3 comes with the SAM CLI in the virtualenv; the AWS CLI is not needed.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
README = ROOT / "README.md"
DEFAULT_REGION = "us-east-1"
# CloudFormation's stack names.
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")

# The retry policy's bounds (shared/src/retry.rs): each delay is jittered by up to +20 % and
# capped below SQS's 12 h visibility limit. A test runs `--min-retention-days` against the
# code's own rule so the two cannot drift.
JITTER = 0.2
MAX_DELAY_SECONDS = 12 * 60 * 60 - 300


class Refused(Exception):
    """A value the deploy must not go ahead with; the message says what to change."""


def min_retention_days(schedule: str) -> int:
    """The shortest RetentionDays a retry schedule allows (shared/src/config.rs)."""
    delays = [int(p) for p in (s.strip() for s in schedule.split(",")) if p]
    span = sum(min(d * (1 + JITTER), MAX_DELAY_SECONDS) for d in delays)
    return math.ceil(span / 86_400) + 1


def load_template() -> dict:
    import yaml  # PyYAML, from the SAM CLI's dependencies

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short forms (!Ref, !Sub, ...): their values are enough here.
    def tagged(loader, _suffix, node):
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    Loader.add_multi_constructor("!", tagged)
    return yaml.load(TEMPLATE.read_text(), Loader=Loader)


def parse_overrides(text: str) -> dict[str, str]:
    """`Key=value Key2="a b"`, as `sam deploy --parameter-overrides` takes them."""
    out = {}
    for word in shlex.split(text or ""):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise Refused(f"parameter {word!r} is not Key=value")
        out[key] = value
    return out


def samconfig_overrides() -> dict[str, str]:
    if not SAMCONFIG.exists():
        return {}
    config = tomllib.loads(SAMCONFIG.read_text())
    deploy = config.get("default", {}).get("deploy", {}).get("parameters", {})
    return parse_overrides(deploy.get("parameter_overrides", ""))


def check_parameters(template: dict, values: dict[str, str]) -> dict[str, str]:
    """Checks values as CloudFormation would, plus the rules between parameters the
    functions enforce at cold start; answers every parameter's effective value."""
    declared = template.get("Parameters", {})
    problems = []
    for key in values:
        if key not in declared:
            problems.append(f"{key}: the template has no such parameter")
    effective = {}
    for key, spec in declared.items():
        value = values.get(key, spec.get("Default"))
        if value is None:
            problems.append(f"{key}: required (no default)")
            continue
        value = str(value)
        effective[key] = value
        allowed = spec.get("AllowedValues")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"{key}={value}: not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                problems.append(f"{key}={value}: below the minimum {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                problems.append(f"{key}={value}: above the maximum {spec['MaxValue']}")
            if allowed and number not in [float(a) for a in allowed]:
                problems.append(f"{key}={value}: not one of {allowed}")
        else:
            if allowed and value not in [str(a) for a in allowed]:
                problems.append(f"{key}={value}: not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern and not re.fullmatch(pattern, value):
                why = spec.get("ConstraintDescription", f"does not match {pattern}")
                problems.append(f"{key}={value}: {why}")
            if "MinLength" in spec and len(value) < int(spec["MinLength"]):
                problems.append(f"{key}: shorter than {spec['MinLength']}")
            if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
                problems.append(f"{key}: longer than {spec['MaxLength']}")
    schedule = effective.get("RetrySchedule")
    retention = effective.get("RetentionDays")
    if schedule is not None and retention is not None and not problems:
        least = min_retention_days(schedule)
        if float(retention) < least:
            problems.append(
                f"RetentionDays={retention}: events and attempts must outlive the retry "
                f"schedule; with RetrySchedule={schedule} keep them at least {least} days"
            )
    if problems:
        raise Refused("template parameters refused:\n  " + "\n  ".join(problems))
    return effective


def readme_deploy_commands() -> list[dict[str, str]]:
    """The variables of every `make deploy` line in the README's code blocks."""
    commands, in_code = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not (in_code and re.match(r"\s*make deploy(\s|$)", line)):
            continue
        words = shlex.split(line.split(" #")[0])
        if words[:2] == ["make", "deploy"]:
            commands.append(dict(w.split("=", 1) for w in words[2:] if "=" in w))
    if not commands:
        raise Refused("the README has no `make deploy` command to check")
    return commands


def resolve_region(explicit: str | None) -> str:
    for candidate in (explicit, os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION")):
        if candidate:
            return candidate
    try:
        import boto3

        if boto3.session.Session().region_name:
            return boto3.session.Session().region_name
    except Exception:  # noqa: BLE001 - no profile, no boto3: the default applies
        pass
    return DEFAULT_REGION


def run(*command: str) -> None:
    print("+", " ".join(shlex.quote(c) for c in command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def check_credentials(session) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        who = session.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as e:
        raise Refused(
            f"no usable AWS credentials ({e}). Set AWS_PROFILE to a configured profile, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
            "temporary ones), then run make deploy again."
        ) from e
    print(f"deploying as {who['Arn']} (account {who['Account']}) in {session.region_name}")


def ensure_admin_key(session, name: str, rotate: bool) -> str | None:
    """Creates the admin key parameter when missing (or when rotating); answers the new key,
    or None when an existing one was kept."""
    ssm = session.client("ssm")
    if not rotate:
        try:
            ssm.get_parameter(Name=name)
            print(f"admin key: kept SSM parameter {name} in {session.region_name}")
            return None
        except ssm.exceptions.ParameterNotFound:
            pass
    key = secrets.token_hex(24)
    ssm.put_parameter(
        Name=name,
        Value=key,
        Type="SecureString",
        Overwrite=True,
        Description="hookrelay admin API bearer key",
    )
    print(f"admin key: {'rotated' if rotate else 'created'} SSM parameter {name} in {session.region_name}")
    return key


def read_admin_key(session, name: str) -> str:
    ssm = session.client("ssm")
    return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]


def stack_outputs(session, stack: str) -> dict[str, str]:
    described = session.client("cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def next_steps(outputs: dict[str, str], stack: str, region: str, key: str | None) -> str:
    api = outputs.get("ApiUrl", "<ApiUrl>")
    key_line = (
        f"export KEY={key}   # shown once; later: make admin-key REGION={region}"
        if key
        else f"export KEY=$(make -s admin-key REGION={region})"
    )
    return f"""
Stack {stack} is up in {region}.
{chr(10).join(f"  {k}: {v}" for k, v in sorted(outputs.items()))}

Next: create a source and point a GitHub webhook at it, in the web console
({api}/console, signed in with the admin key) or from a shell:

  export HOOKRELAY={api}
  {key_line}

  # where deliveries go (any HTTPS URL that answers 2xx)
  curl -s -X POST $HOOKRELAY/workspaces/default/endpoints -H "authorization: Bearer $KEY" \\
    -d '{{"name":"my-service","url":"https://example.com/webhooks","events":["*"]}}'

  # a GitHub source; keep the secret for GitHub's form
  SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(20))')
  curl -s -X POST $HOOKRELAY/workspaces/default/sources -H "authorization: Bearer $KEY" \\
    -d '{{"name":"github","verification":{{"type":"github","secret":"'$SECRET'"}}}}'

  # GitHub: repository Settings > Webhooks > Add webhook
  #   Payload URL  $HOOKRELAY/in/<the source's id>
  #   Content type application/json
  #   Secret       $SECRET
  # then the attempts of the ping GitHub sends:
  curl -s "$HOOKRELAY/workspaces/default/attempts" -H "authorization: Bearer $KEY"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK") or "hookrelay")
    parser.add_argument("--region", default=os.environ.get("REGION") or None)
    parser.add_argument("--params", default=os.environ.get("PARAMS", ""),
                        help='template parameters, "Key=value Key2=value"')
    parser.add_argument("--check", action="store_true",
                        help="every step before the first AWS call, then stop")
    parser.add_argument("--check-readme", action="store_true",
                        help="with --check: also the README walk-through's make deploy commands")
    parser.add_argument("--no-build", action="store_true", help="skip sam validate and sam build")
    parser.add_argument("--rotate-admin-key", action="store_true")
    parser.add_argument("--show-admin-key", action="store_true",
                        help="print the admin key from SSM and exit")
    parser.add_argument("--min-retention-days", metavar="SCHEDULE",
                        help="print the least RetentionDays a retry schedule allows and exit")
    args = parser.parse_args()

    if args.min_retention_days is not None:
        print(min_retention_days(args.min_retention_days))
        return 0

    try:
        template = load_template()
        values = {**samconfig_overrides(), **parse_overrides(args.params)}
        effective = check_parameters(template, values)
        if args.show_admin_key:
            import boto3

            session = boto3.session.Session(region_name=resolve_region(args.region))
            print(read_admin_key(session, effective["AdminKeyParameterName"]))
            return 0
        print(f"parameters: {len(values)} set, all within the template's constraints")
        if args.check_readme:
            for command in readme_deploy_commands():
                given = parse_overrides(command.get("PARAMS", ""))
                check_parameters(template, {**samconfig_overrides(), **given})
                if not STACK_NAME.fullmatch(command.get("STACK", "hookrelay")):
                    raise Refused(f"README: STACK={command['STACK']} is not a stack name")
            print("README: every make deploy command's parameters are valid")
        if not STACK_NAME.fullmatch(args.stack):
            raise Refused(f"STACK={args.stack}: letters, digits and hyphens, starting with a letter")

        region = resolve_region(args.region)
        if not args.no_build:
            run("sam", "validate", "--lint")
            run("sam", "build")
        if args.check:
            print(f"check passed: stack {args.stack}, region {region}; "
                  "stopping before the AWS calls (credentials, SSM, sam deploy)")
            return 0

        import boto3

        session = boto3.session.Session(region_name=region)
        check_credentials(session)
        key = ensure_admin_key(session, effective["AdminKeyParameterName"], args.rotate_admin_key)
        deploy = [
            "sam", "deploy",
            "--stack-name", args.stack,
            "--region", region,
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
        ]
        if values:
            deploy += ["--parameter-overrides", *[f"{k}={v}" for k, v in values.items()]]
        run(*deploy)
        print(next_steps(stack_outputs(session, args.stack), args.stack, region, key))
        return 0
    except Refused as e:
        print(f"deploy: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"deploy: {e.cmd[0]} {e.cmd[1]} failed (exit {e.returncode})", file=sys.stderr)
        return e.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
