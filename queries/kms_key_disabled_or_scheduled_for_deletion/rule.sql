SELECT * FROM cloudtrail
WHERE eventSource = 'kms.amazonaws.com'
  AND eventName IN ('DisableKey', 'ScheduleKeyDeletion')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
