SELECT * FROM cloudtrail
WHERE eventSource = 'lambda.amazonaws.com'
  AND eventName LIKE 'CreateFunction%'
  AND json_extract_string(requestParameters, '$.role') IS NOT NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
