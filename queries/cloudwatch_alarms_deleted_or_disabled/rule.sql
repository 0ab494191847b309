SELECT * FROM cloudtrail
WHERE eventSource = 'monitoring.amazonaws.com'
  AND eventName IN ('DeleteAlarms', 'DisableAlarmActions')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
