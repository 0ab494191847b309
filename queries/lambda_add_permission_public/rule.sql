SELECT * FROM cloudtrail
WHERE eventSource = 'lambda.amazonaws.com'
  AND eventName LIKE 'AddPermission%'
  AND json_extract_string(requestParameters, '$.principal') = '*'
  AND json_extract_string(requestParameters, '$.principalOrgID') IS NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
