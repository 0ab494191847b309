SELECT * FROM cloudtrail
WHERE eventSource = 'organizations.amazonaws.com'
  AND eventName = 'LeaveOrganization'
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
