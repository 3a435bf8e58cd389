"""deploy/aws/: the Terraform configuration's syntax and formatting, and what it promises.

The AWS provider cannot be downloaded here, so `terraform validate` and `plan` are not
run (deploy/aws/README.md says so). What is checked: `terraform fmt -check` where
terraform is installed; every .tf parses (python-hcl2); only port 2048 is open to
clients and the VPC; the load balancer health-checks /ready; each host gets its shard;
the hosts' cloud-init renders (terraform console) and is valid bash.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "aws"
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed here")


def unquote(value: Any) -> Any:
    """python-hcl2 keeps a string literal's quotes: "\"HTTP\"" → "HTTP"."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def resources(kind: str) -> dict[str, dict[str, Any]]:
    """Every resource of `kind` in the configuration, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(FOLDER.glob("*.tf")):
        for block in hcl2.loads(path.read_text()).get("resource", []):
            for resource_kind, named in block.items():
                if unquote(resource_kind) == kind:
                    found.update({unquote(name): body for name, body in named.items()})
    return found


def test_every_file_parses() -> None:
    files = sorted(FOLDER.glob("*.tf"))
    assert {p.name for p in files} >= {"versions.tf", "variables.tf", "hosts.tf", "lb.tf", "security.tf"}
    for path in [*files, FOLDER / "terraform.tfvars.example"]:
        parsed = hcl2.loads(path.read_text())
        assert parsed, f"{path.name} is empty"


def test_a_syntax_error_is_caught() -> None:
    with pytest.raises(Exception):  # noqa: B017 - lark's errors have no common public base
        hcl2.loads('resource "aws_instance" "x" {\n  count = \n}\n')


@needs_terraform
def test_terraform_fmt_finds_nothing_to_change() -> None:
    done = subprocess.run(
        [str(TERRAFORM), "fmt", "-check", "-recursive", "-diff", str(FOLDER)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_only_2048_is_open_to_clients_and_the_vpc() -> None:
    ingress = resources("aws_vpc_security_group_ingress_rule")
    assert ingress, "no ingress rules"
    for name, rule in ingress.items():
        port = 2049 if name.startswith("efs_") else 2048  # NFS, from the hosts only
        assert (rule["from_port"], rule["to_port"]) == (port, port), name
        if name.startswith("efs_"):
            assert "aws_security_group.host.id" in rule["referenced_security_group_id"]
    # The hosts take 2048 from the load balancer and from inside the VPC, nothing else.
    assert "aws_security_group.lb.id" in ingress["host_lb"]["referenced_security_group_id"]
    assert "data.aws_vpc.this.cidr_block" in ingress["host_vpc"]["cidr_ipv4"]
    assert not resources("aws_security_group_rule")  # every rule is one of the above
    for path in FOLDER.glob("*.tf"):
        assert "= 22\n" not in path.read_text(), f"{path.name} opens SSH"


def test_the_load_balancer_checks_ready_and_keeps_metrics_inside() -> None:
    (group,) = resources("aws_lb_target_group").values()
    (check,) = group["health_check"]
    assert unquote(check["path"]) == "/ready" and unquote(check["matcher"]) == "200"
    assert group["port"] == 2048
    (listener,) = resources("aws_lb_listener").values()
    assert listener["port"] == 2048
    (rule,) = resources("aws_lb_listener_rule").values()
    assert unquote(rule["condition"][0]["path_pattern"][0]["values"][0]) == "/metrics"
    (balancer,) = resources("aws_lb").values()
    assert balancer["idle_timeout"] > 300  # the coordinator's --first-byte-timeout


def test_each_host_runs_its_shard() -> None:
    host = resources("aws_instance")["host"]
    assert host["count"] == "${var.hosts}"
    assert 'shard           = "${count.index}/${var.hosts}"' in (FOLDER / "hosts.tf").read_text()


@needs_terraform
def test_the_hosts_cloud_init_renders_to_valid_bash(tmp_path: Path) -> None:
    values = (
        'shard="1/3", image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/coordinator:1", '
        'region="eu-west-1", file_system_id="fs-1", access_point_id="fsap-1", '
        'api_keys_secret="arn:aws:secretsmanager:eu-west-1:1:secret:c", log_group="/c/c", grace_period=60'
    )
    expression = f'templatefile("{FOLDER / "user_data.sh.tftpl"}", {{{values}}})'
    done = subprocess.run(
        [str(TERRAFORM), "console"],
        input=expression,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    script = done.stdout.strip().removeprefix("<<EOT").removesuffix("EOT")
    assert 'COORDINATOR_SHARD="1/3"' in script and 'awslogs-stream="shard-1-of-3"' in script
    assert "--log-driver awslogs" in script and "-p 2048:2048" in script
    # The profiles come from the file system, never from the image.
    assert "efs _netdev,tls,iam,accesspoint=fsap-1" in script
    (tmp_path / "user_data.sh").write_text(script)
    checked = subprocess.run(["bash", "-n", str(tmp_path / "user_data.sh")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_readme_says_what_was_not_run() -> None:
    readme = (FOLDER / "README.md").read_text()
    assert "`terraform validate` and `terraform plan` were not run" in readme
