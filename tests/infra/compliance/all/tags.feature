Feature: Every resource that takes tags is tagged with its project and environment
  Scaleway tags are strings ("key=value" here) on most resources and a map on buckets. Each
  scenario keeps the resources that lack the tag and fails if there is any (on a compliant plan it
  finds none and is skipped).

  Scenario: Every taggable resource names its project
    Given I have resource that supports tags defined
    When its type is not scaleway_object_bucket
    And its tags does not include "^project=[a-z][a-z0-9-]+$" regex
    Then it fails

  Scenario: Every taggable resource names its environment
    Given I have resource that supports tags defined
    When its type is not scaleway_object_bucket
    And its tags does not include "^environment=(dev|prod)$" regex
    Then it fails

  Scenario: Every bucket names its project
    Given I have scaleway_object_bucket defined
    When its tags does not include project
    Then it fails

  Scenario: Every bucket names its environment
    Given I have scaleway_object_bucket defined
    When its tags does not include environment
    Then it fails
