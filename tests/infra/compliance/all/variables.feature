Feature: No variable holds a secret default
  Credentials come from SCW_* and every password is generated and kept in Secret Manager, so no
  secret ever enters through a variable, let alone through a default.

  Scenario: No variable is a secret input
    Given I have any variable defined
    Then its sensitive property must not be true

  Scenario: No default looks like a credential
    Given I have any variable defined
    Then its value must not match the "^(SCW[A-Z0-9]{17}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|-----BEGIN [A-Z ]*PRIVATE KEY-----.*)$" regex
