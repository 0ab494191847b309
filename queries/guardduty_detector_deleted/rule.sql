SELECT *
FROM cloudtrail
WHERE eventSource = 'guardduty.amazonaws.com'
  AND eventName = 'DeleteDetector'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
  AND eventType IS DISTINCT FROM 'AwsServiceEvent'
