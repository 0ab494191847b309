SELECT * FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'CreateLoginProfile'
  AND errorCode IS NULL
  AND json_extract_string(requestParameters, '$.userName') IS NOT NULL
  AND json_extract_string(requestParameters, '$.userName') IS DISTINCT FROM userIdentity.userName
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
