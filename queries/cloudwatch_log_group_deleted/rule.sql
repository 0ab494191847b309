SELECT * FROM cloudtrail
WHERE eventSource = 'logs.amazonaws.com'
  AND eventName = 'DeleteLogGroup'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
