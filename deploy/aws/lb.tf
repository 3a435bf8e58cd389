# An Application Load Balancer on port 2048: it health-checks each host's /ready (503
# while none of its children can serve and from the first moment of a drain), keeps a
# stream open as long as tokens keep coming (idle timeout above the coordinator's
# first-byte and idle timeouts), and answers /metrics itself with 404, so the metrics
# stay inside the VPC.

resource "aws_lb" "coordinator" {
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.lb.id]
  # A browser may think for minutes before the first token (--first-byte-timeout 300).
  idle_timeout               = 330
  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "coordinator" {
  name     = var.name
  port     = 2048
  protocol = "HTTP"
  vpc_id   = var.vpc_id
  # A host leaving gets its drain: in-flight answers finish, then it stops.
  deregistration_delay = var.grace_period + 10
  # Least outstanding requests: a host with free children gets the next request.
  load_balancing_algorithm_type = "least_outstanding_requests"
  health_check {
    path                = "/ready"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
}

resource "aws_lb_target_group_attachment" "host" {
  count            = var.hosts
  target_group_arn = aws_lb_target_group.coordinator.arn
  target_id        = aws_instance.host[count.index].id
  port             = 2048
}

resource "aws_lb_listener" "coordinator" {
  load_balancer_arn = aws_lb.coordinator.arn
  port              = 2048
  protocol          = var.certificate_arn == "" ? "HTTP" : "HTTPS"
  certificate_arn   = var.certificate_arn == "" ? null : var.certificate_arn
  ssl_policy        = var.certificate_arn == "" ? null : "ELBSecurityPolicy-TLS13-1-2-2021-06"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.coordinator.arn
  }
}

resource "aws_lb_listener_rule" "no_metrics" {
  listener_arn = aws_lb_listener.coordinator.arn
  priority     = 10
  condition {
    path_pattern {
      values = ["/metrics", "/metrics/*"]
    }
  }
  action {
    type = "fixed-response"
    fixed_response {
      content_type = "application/json"
      status_code  = "404"
      message_body = "{\"error\": {\"message\": \"/metrics is served inside the VPC only\", \"type\": \"invalid_request_error\", \"code\": \"not_found\"}}"
    }
  }
}
