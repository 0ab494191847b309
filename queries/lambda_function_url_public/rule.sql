SELECT * FROM cloudtrail
WHERE eventSource = 'lambda.amazonaws.com'
  AND (eventName LIKE 'CreateFunctionUrlConfig%' OR eventName LIKE 'UpdateFunctionUrlConfig%')
  AND json_extract_string(requestParameters, '$.authType') = 'NONE'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
