SELECT * FROM cloudtrail
WHERE eventSource = 'glue.amazonaws.com'
  AND eventName = 'CreateDevEndpoint'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
