SELECT * FROM cloudtrail
WHERE eventSource = 'codebuild.amazonaws.com'
  AND eventName = 'CreateProject'
  AND json_extract_string(requestParameters, '$.serviceRole') IS NOT NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
