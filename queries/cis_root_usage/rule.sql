SELECT * FROM cloudtrail
WHERE userIdentity.type = 'Root'
  AND userIdentity.invokedBy IS NULL
  AND eventType IS DISTINCT FROM 'AwsServiceEvent'
