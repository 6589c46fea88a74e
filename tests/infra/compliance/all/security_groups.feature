Feature: Security groups drop inbound traffic by default and never open SSH to the world
  Scaleway security groups filter the instances' public interface. Every group drops what no rule
  accepts, only HTTP and HTTPS may be reachable from anywhere, and SSH only from the admin ranges.
  That every instance names one of these groups is checked by checkov (tests/infra/checkov).

  @noskip
  Scenario: Inbound traffic is dropped by default
    Given I have scaleway_instance_security_group defined
    Then it must contain inbound_default_policy
    And its value must be drop

  Scenario: Every inbound rule names the source range it accepts
    Given I have scaleway_instance_security_group defined
    When it has inbound_rule
    Then it must contain inbound_rule
    And it must contain ip_range
    And its value must match the "^[0-9a-fA-F:.]+/[0-9]+$" regex

  Scenario: Rules open to the world accept only HTTP and HTTPS, one port each
    Given I have scaleway_instance_security_group defined
    When it has inbound_rule
    Then it must contain inbound_rule
    When its ip_range is "^(0\.0\.0\.0|::)/0$" regex
    Then it must contain port
    And its value must match the "^(80|443)$" regex

  Scenario: SSH is never open to the world
    Given I have scaleway_instance_security_group defined
    When it has inbound_rule
    Then it must contain inbound_rule
    When its port is 22
    Then it must contain ip_range
    And its value must not match the "^(0\.0\.0\.0|::)/0$" regex
