Feature: Buckets and the container registry are private; backups and the production log expire
  That every bucket has its own ACL resource is checked by checkov (tests/infra/checkov): the
  reference steps of terraform-compliance cannot say "every".

  Scenario: Every bucket has a private ACL
    Given I have scaleway_object_bucket_acl defined
    Then it must contain acl
    And its value must be private

  Scenario: The buckets' own ACL attribute stays private
    Given I have scaleway_object_bucket defined
    When it has acl
    Then it must contain acl
    And its value must be private

  Scenario: The registry namespace is private
    Given I have scaleway_registry_namespace defined
    Then it must contain is_public
    And its value must be false

  Scenario: The backups bucket is versioned
    Given I have scaleway_object_bucket defined
    When its name is ".*-backups$" regex
    Then it must contain versioning
    And it must contain enabled
    And its value must be true

  Scenario: The backups bucket expires old objects
    Given I have scaleway_object_bucket defined
    When its name is ".*-backups$" regex
    Then it must contain lifecycle_rule
    And it must contain expiration
    And it must contain days
    And its value must be greater than 0

  Scenario: The backups bucket expires old versions
    Given I have scaleway_object_bucket defined
    When its name is ".*-backups$" regex
    Then it must contain lifecycle_rule
    And it must contain noncurrent_version_expiration
    And it must contain noncurrent_days
    And its value must be greater than 0

  Scenario: The production log expires (predictions and labels are not kept for ever)
    Given I have scaleway_object_bucket defined
    When its name is ".*-production-log$" regex
    Then it must contain lifecycle_rule
    And it must contain expiration
    And it must contain days
    And its value must be greater than 0
