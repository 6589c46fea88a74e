Feature: Production is highly available
  At least two service instances, behind a load balancer that probes the model service's
  readiness through each instance's reverse proxy.

  @noskip
  Scenario: At least two service instances
    Given I have scaleway_instance_server defined
    When its tags contains "^role=service$" regex
    And I count them
    Then I expect the result is more and equal to 2

  @noskip
  Scenario: A load balancer exists
    Given I have scaleway_lb defined
    When I count them
    Then I expect the result is equal to 1

  @noskip
  Scenario: The load balancer checks /readyz over HTTP
    Given I have scaleway_lb_backend defined
    Then it must contain health_check_http
    And it must contain uri
    And its value must be /readyz

  @noskip
  Scenario: The load balancer reaches the instances over the private network
    Given I have scaleway_lb defined
    Then it must contain private_network
