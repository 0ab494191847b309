SELECT *
FROM cloudtrail
WHERE eventSource = 'cloudtrail.amazonaws.com'
  AND eventName = 'DeleteTrail'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
  AND eventType IS DISTINCT FROM 'AwsServiceEvent'
