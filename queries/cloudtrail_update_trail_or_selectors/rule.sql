SELECT * FROM cloudtrail
WHERE eventSource = 'cloudtrail.amazonaws.com'
  AND eventName IN ('UpdateTrail', 'PutEventSelectors', 'PutInsightSelectors')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
