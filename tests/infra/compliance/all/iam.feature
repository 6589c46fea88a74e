Feature: Each role's IAM application has only the permission sets it needs
  The instances (`hosts`), the backup job (`backup`) and the retrain workflow (`retrain`) each get their own IAM application and API
  key (iac/iam.tf) instead of one project-wide key. Their policies name the permission sets they
  need and nothing else: no full access, no deletion, no Secret Manager, no IAM. The CI
  applications (ci-plan, ci-apply-<env>) are in iac/bootstrap and tested on its plan
  (tests/infra/test_terraform.py).

  @noskip
  Scenario: The hosts application only pulls images and reads and writes objects
    Given I have scaleway_iam_policy defined
    When its name is ".*-hosts$" regex
    Then it must contain rule
    And it must contain permission_set_names
    And its value must match the "^(ContainerRegistryReadOnly|ObjectStorageObjectsRead|ObjectStorageObjectsWrite)$" regex

  @noskip
  Scenario: The backup application only reads and writes objects, never deletes
    Given I have scaleway_iam_policy defined
    When its name is ".*-backup$" regex
    Then it must contain rule
    And it must contain permission_set_names
    And its value must match the "^(ObjectStorageObjectsRead|ObjectStorageObjectsWrite)$" regex

  @noskip
  Scenario: The retrain application only reads objects (the production log)
    Given I have scaleway_iam_policy defined
    When its name is ".*-retrain$" regex
    Then it must contain rule
    And it must contain permission_set_names
    And its value must match the "^ObjectStorageObjectsRead$" regex

  Scenario: No IAM policy of an environment grants full access, deletion, secrets or IAM
    Given I have scaleway_iam_policy defined
    Then it must contain rule
    And it must contain permission_set_names
    And its value must not match the ".*(FullAccess|Manager|Delete|IAM|SecretManager|AllProducts).*" regex
