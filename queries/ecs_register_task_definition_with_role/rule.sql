SELECT * FROM cloudtrail
WHERE eventSource = 'ecs.amazonaws.com'
  AND eventName = 'RegisterTaskDefinition'
  AND json_extract_string(requestParameters, '$.taskRoleArn') IS NOT NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
