SELECT * FROM cloudtrail
WHERE eventSource = 'rolesanywhere.amazonaws.com'
  AND eventName IN ('CreateTrustAnchor', 'UpdateTrustAnchor')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
