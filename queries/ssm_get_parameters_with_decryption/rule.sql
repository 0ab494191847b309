SELECT * FROM cloudtrail
WHERE eventSource = 'ssm.amazonaws.com'
  AND eventName IN ('GetParameter', 'GetParameters', 'GetParametersByPath', 'GetParameterHistory')
  AND json_extract_string(requestParameters, '$.withDecryption') = 'true'
  AND (userIdentity.type IN ('IAMUser', 'Root')
       OR userIdentity.sessionContext.sessionIssuer.arn LIKE '%/AWSReservedSSO_%'
       OR sessionCredentialFromConsole = 'true')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
