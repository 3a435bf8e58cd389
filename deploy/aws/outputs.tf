output "endpoint" {
  description = "The OpenAI-compatible endpoint (base_url)."
  value       = "${var.certificate_arn == "" ? "http" : "https"}://${aws_lb.coordinator.dns_name}:2048/v1"
}

output "hosts" {
  description = "Each host's address inside the VPC, by shard: `coordinator status --url` and Prometheus targets."
  value       = { for index, host in aws_instance.host : "${index}/${var.hosts}" => "http://${host.private_ip}:2048" }
}

output "profiles_file_system" {
  description = "The EFS file system (and access point) that holds the profiles."
  value       = "${aws_efs_file_system.profiles.id} (access point ${aws_efs_access_point.profiles.id})"
}

output "api_keys_secret" {
  description = "The Secrets Manager secret to put the API keys in, one per line."
  value       = aws_secretsmanager_secret.api_keys.name
}

output "log_group" {
  value = aws_cloudwatch_log_group.coordinator.name
}
