# N hosts, host i running shard i of N. One coordinator per host, in Docker, started by
# cloud-init (user_data.sh.tftpl): it mounts the profiles' file system, reads the API
# keys from Secrets Manager, and runs the image with --shard i/N. Changing `hosts`
# replaces every host's user data: see README.md for the order that keeps a profile
# from being live on two hosts.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

resource "aws_instance" "host" {
  count                       = var.hosts
  ami                         = data.aws_ssm_parameter.al2023.value
  instance_type               = var.instance_type
  subnet_id                   = var.private_subnet_ids[count.index % length(var.private_subnet_ids)]
  vpc_security_group_ids      = [aws_security_group.host.id]
  iam_instance_profile        = aws_iam_instance_profile.host.name
  user_data_replace_on_change = true
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    shard           = "${count.index}/${var.hosts}"
    image           = var.image
    region          = var.region
    file_system_id  = aws_efs_file_system.profiles.id
    access_point_id = aws_efs_access_point.profiles.id
    api_keys_secret = aws_secretsmanager_secret.api_keys.arn
    log_group       = aws_cloudwatch_log_group.coordinator.name
    grace_period    = var.grace_period
  })
  metadata_options {
    http_tokens = "required"
  }
  root_block_device {
    volume_size = 30
    encrypted   = true
  }
  tags = {
    Name  = "${var.name}-${count.index}"
    Shard = "${count.index}/${var.hosts}"
  }
  # A newer AMI is taken by replacing hosts on purpose (one at a time), not at every apply.
  lifecycle {
    ignore_changes = [ami]
  }
  depends_on = [aws_efs_mount_target.profiles]
}
