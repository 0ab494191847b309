SELECT * FROM cloudtrail
WHERE eventSource = 'macie2.amazonaws.com'
  AND eventName IN ('DisableMacie', 'UpdateMacieSession', 'DisassociateFromAdministratorAccount')
  AND (eventName <> 'UpdateMacieSession' OR json_extract_string(requestParameters, '$.status') = 'PAUSED')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
