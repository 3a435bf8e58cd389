# The profiles live on EFS, one folder every host mounts (README.md: why not Secrets
# Manager). Encrypted at rest (KMS) and in transit (the mount helper's TLS), mounted
# through an access point that maps every client to the image's user 10001, and only
# with the hosts' IAM role.

resource "aws_efs_file_system" "profiles" {
  creation_token = "${var.name}-profiles"
  encrypted      = true
  tags = {
    Name = "${var.name}-profiles"
  }
}

resource "aws_efs_mount_target" "profiles" {
  for_each        = toset(var.private_subnet_ids)
  file_system_id  = aws_efs_file_system.profiles.id
  subnet_id       = each.value
  security_groups = [aws_security_group.efs.id]
}

resource "aws_efs_access_point" "profiles" {
  file_system_id = aws_efs_file_system.profiles.id
  posix_user {
    uid = 10001
    gid = 10001
  }
  root_directory {
    path = "/profiles"
    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0700"
    }
  }
}

data "aws_iam_policy_document" "efs" {
  statement {
    sid     = "HostsOnlyOverTls"
    actions = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.host.arn]
    }
    resources = [aws_efs_file_system.profiles.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["true"]
    }
  }
}

resource "aws_efs_file_system_policy" "profiles" {
  file_system_id = aws_efs_file_system.profiles.id
  policy         = data.aws_iam_policy_document.efs.json
}

# The API keys (one per line), read by each host at boot into a file the container reads
# (COORDINATOR_API_KEY_FILE). Its value is set outside Terraform, so that no key is in
# the state: aws secretsmanager put-secret-value --secret-id NAME --secret-string ...
resource "aws_secretsmanager_secret" "api_keys" {
  name = "${var.name}/api-keys"
}
