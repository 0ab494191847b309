SELECT * FROM cloudtrail
WHERE eventSource = 'ssm.amazonaws.com'
  AND eventName = 'SendCommand'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
