# Only port 2048 is open anywhere: clients → load balancer, load balancer → hosts, and
# the VPC → hosts (Prometheus scrapes /metrics on 2048; `coordinator status` asks each
# host). The profiles' file system takes NFS from the hosts only.

data "aws_vpc" "this" {
  id = var.vpc_id
}

resource "aws_security_group" "lb" {
  name        = "${var.name}-lb"
  description = "Clients to the load balancer on 2048"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "lb_clients" {
  for_each          = toset(var.client_cidrs)
  security_group_id = aws_security_group.lb.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 2048
  to_port           = 2048
}

resource "aws_vpc_security_group_egress_rule" "lb_hosts" {
  security_group_id            = aws_security_group.lb.id
  referenced_security_group_id = aws_security_group.host.id
  ip_protocol                  = "tcp"
  from_port                    = 2048
  to_port                      = 2048
}

resource "aws_security_group" "host" {
  name        = "${var.name}-host"
  description = "Coordinator hosts: 2048 from the load balancer and from inside the VPC"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "host_lb" {
  security_group_id            = aws_security_group.host.id
  referenced_security_group_id = aws_security_group.lb.id
  ip_protocol                  = "tcp"
  from_port                    = 2048
  to_port                      = 2048
}

resource "aws_vpc_security_group_ingress_rule" "host_vpc" {
  security_group_id = aws_security_group.host.id
  cidr_ipv4         = data.aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = 2048
  to_port           = 2048
}

# Out: the site (HTTPS), the image registry, CloudWatch, Secrets Manager, SSM, NFS to the
# file system. Browsers talk to the site over HTTPS only.
resource "aws_vpc_security_group_egress_rule" "host_https" {
  security_group_id = aws_security_group.host.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "host_nfs" {
  security_group_id            = aws_security_group.host.id
  referenced_security_group_id = aws_security_group.efs.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}

resource "aws_security_group" "efs" {
  name        = "${var.name}-profiles"
  description = "The profiles file system: NFS from the hosts"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "efs_hosts" {
  security_group_id            = aws_security_group.efs.id
  referenced_security_group_id = aws_security_group.host.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}
