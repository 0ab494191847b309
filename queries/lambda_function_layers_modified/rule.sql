SELECT * FROM cloudtrail
WHERE eventSource = 'lambda.amazonaws.com'
  AND eventName LIKE 'UpdateFunctionConfiguration%'
  AND json_array_length(json_extract(requestParameters, '$.layers')) > 0
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
