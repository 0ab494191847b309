SELECT * FROM cloudtrail
WHERE eventSource = 'config.amazonaws.com'
  AND eventName IN ('StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
