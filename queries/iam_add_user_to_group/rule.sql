SELECT * FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'AddUserToGroup'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
