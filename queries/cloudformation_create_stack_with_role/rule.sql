SELECT * FROM cloudtrail
WHERE eventSource = 'cloudformation.amazonaws.com'
  AND eventName = 'CreateStack'
  AND json_extract_string(requestParameters, '$.roleARN') IS NOT NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
