SELECT * FROM cloudtrail
WHERE eventSource = 'securityhub.amazonaws.com'
  AND eventName IN ('DisableSecurityHub', 'BatchDisableStandards')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
