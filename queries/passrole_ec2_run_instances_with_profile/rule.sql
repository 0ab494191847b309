SELECT * FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND ((eventName = 'RunInstances' AND json_extract(requestParameters, '$.iamInstanceProfile') IS NOT NULL)
    OR (eventName = 'RequestSpotInstances' AND json_extract(requestParameters, '$.launchSpecification.iamInstanceProfile') IS NOT NULL))
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
