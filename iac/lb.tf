# Load balancer, only with service_instance_count > 1: a public IP, HTTP on 80 (and HTTPS on 443
# with a Let's Encrypt certificate for the stack's names: domain_name's or ip_dns_zone's) forwarded over the private network to
# the service instances' reverse proxy (stack_ports.http), which is probed on health_check_path.
# The public ports are the web's standard ones, whatever the instances listen on. In HA the load
# balancer terminates TLS, so the service instances' proxy serves plain HTTP (the inventory says so
# in cepage_tls_termination); the control instance's proxy keeps its own certificates.

locals {
  service_hosts = { for name, h in local.hosts : name => h if contains(h.roles, "service") }
}

resource "scaleway_lb_ip" "main" {
  count = local.high_availability ? 1 : 0

  tags = local.tags
}

resource "scaleway_lb" "main" {
  count = local.high_availability ? 1 : 0

  name        = local.name
  description = "${local.name}: entry point of the service instances"
  type        = var.load_balancer_type
  ip_ids      = [scaleway_lb_ip.main[0].id]
  tags        = local.tags

  private_network {
    private_network_id = scaleway_vpc_private_network.main.id
  }
}

resource "scaleway_lb_backend" "service" {
  count = local.high_availability ? 1 : 0

  lb_id            = scaleway_lb.main[0].id
  name             = "${local.name}-service"
  forward_protocol = "http"
  forward_port     = var.stack_ports.http
  server_ips       = [for name in sort(keys(local.service_hosts)) : local.private_ipv4[name]]

  health_check_port        = var.stack_ports.http
  health_check_delay       = "10s"
  health_check_timeout     = "5s"
  health_check_max_retries = 3
  health_check_http {
    uri  = var.health_check_path
    code = 200
    # The reverse proxy routes by name: probe the API's name when there is one.
    host_header = local.named ? "api.${local.app_domain}" : null
  }
  # A host marked down keeps the requests it is already answering: a rolling deploy drains a host
  # by failing this health check while its proxy still serves (playbooks/roles/cepage_stack), and
  # "shutdown_sessions" would cut what is in flight at that instant. The price, on a host that
  # died: its open connections (a UI's websocket) wait for their timeout instead of closing at once.
  on_marked_down_action = "none"
  # A connection an instance refuses (a proxy that stopped, a host that went down) is tried again
  # on another instance: without redispatch the retries go to the same instance and the client
  # gets a 503 until the health check marks it down (up to ~11 s).
  max_retries              = 3
  redispatch_attempt_count = 1
}

resource "scaleway_lb_frontend" "http" {
  count = local.high_availability ? 1 : 0

  lb_id        = scaleway_lb.main[0].id
  backend_id   = scaleway_lb_backend.service[0].id
  name         = "${local.name}-http"
  inbound_port = 80
}

resource "scaleway_lb_certificate" "main" {
  count = local.high_availability && local.named ? 1 : 0

  lb_id = scaleway_lb.main[0].id
  name  = "${local.name}-letsencrypt"

  letsencrypt {
    common_name              = local.app_domain
    subject_alternative_name = ["api.${local.app_domain}"]
  }
}

resource "scaleway_lb_frontend" "https" {
  count = local.high_availability && local.named ? 1 : 0

  lb_id           = scaleway_lb.main[0].id
  backend_id      = scaleway_lb_backend.service[0].id
  name            = "${local.name}-https"
  inbound_port    = 443
  certificate_ids = [scaleway_lb_certificate.main[0].id]
}

# With a certificate, port 80 only sends browsers to HTTPS: the API and the UI never answer in
# clear text through the load balancer. Let's Encrypt's HTTP challenge (answered by the load
# balancer itself) is left alone.
resource "scaleway_lb_acl" "https_redirect" {
  count = local.high_availability && local.named ? 1 : 0

  frontend_id = scaleway_lb_frontend.http[0].id
  name        = "${local.name}-https-redirect"
  description = "HTTP to HTTPS, except the ACME challenge"
  index       = 0

  action {
    type = "redirect"
    redirect {
      type   = "scheme"
      target = "https"
      code   = 308
    }
  }

  match {
    http_filter       = "path_begin"
    http_filter_value = ["/.well-known/acme-challenge/"]
    invert            = true
  }
}

# Without domain_name, prod's certificate is for a name under ip_dns_zone, and the load balancer
# asks Let's Encrypt only: when the zone's shared weekly limit is used up (sslip.io's often is),
# the certificate, and so the apply, fails until the limit frees. A warning at plan time, not an
# error: dev and a trial of prod may accept it.
check "prod_has_a_domain" {
  assert {
    condition     = !local.high_availability || var.domain_name != "" || var.ip_dns_zone == ""
    error_message = "The load balancer's certificate will be for a name under ${var.ip_dns_zone}, whose Let's Encrypt limit is shared with every user of that zone: set domain_name for prod (docs/install.md, HTTPS and names)."
  }
}
