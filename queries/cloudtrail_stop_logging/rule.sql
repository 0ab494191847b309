SELECT *
FROM cloudtrail
WHERE eventSource = 'cloudtrail.amazonaws.com'
  AND eventName = 'StopLogging'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
  AND eventType IS DISTINCT FROM 'AwsServiceEvent'
