variable "region" {
  description = "The AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "coordinator"
}

variable "vpc_id" {
  description = "The VPC the hosts, the load balancer and the file system live in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Subnets of the load balancer (two availability zones at least)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Subnets of the hosts and of the file system's mount targets; they reach the internet through a NAT (the site, the image registry)."
  type        = list(string)
}

variable "hosts" {
  description = "How many hosts, each one shard of the profiles (--shard i/hosts)."
  type        = number
  default     = 3
  validation {
    condition     = var.hosts >= 1 && var.hosts <= 64
    error_message = "hosts must be 1 to 64."
  }
}

variable "instance_type" {
  description = "EC2 type of a host: about 450 MiB per profile with Chromium, plus 1 GiB for the system and Docker (m6i.xlarge, 16 GiB: about 30 profiles)."
  type        = string
  default     = "m6i.xlarge"
}

variable "image" {
  description = "The coordinator's image (docker/Dockerfile), pushed to ECR: ACCOUNT.dkr.ecr.REGION.amazonaws.com/coordinator:TAG."
  type        = string
}

variable "client_cidrs" {
  description = "Addresses that may reach the load balancer's port 2048."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the load balancer's port 2048; empty: plain HTTP (only inside a private network)."
  type        = string
  default     = ""
}

variable "grace_period" {
  description = "Seconds in-flight answers get when a host stops (COORDINATOR_GRACE_PERIOD)."
  type        = number
  default     = 60
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the coordinators' logs."
  type        = number
  default     = 30
}
