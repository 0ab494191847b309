SELECT * FROM cloudtrail
WHERE eventSource = 'bedrock.amazonaws.com'
  AND eventName = 'DeleteModelInvocationLoggingConfiguration'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
