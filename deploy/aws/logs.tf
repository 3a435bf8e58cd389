# Every host's container logs (JSON lines, one stream per host) through Docker's awslogs
# driver. Metrics: Prometheus inside the VPC scrapes each host's :2048/metrics
# (deploy/prometheus/); the load balancer's own metrics are CloudWatch's.

resource "aws_cloudwatch_log_group" "coordinator" {
  name              = "/${var.name}/coordinator"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${var.name}-unhealthy-hosts"
  alarm_description   = "A host's /ready has failed: none of its children can serve, or it is down."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  dimensions = {
    LoadBalancer = aws_lb.coordinator.arn_suffix
    TargetGroup  = aws_lb_target_group.coordinator.arn_suffix
  }
}
