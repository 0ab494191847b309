SELECT * FROM cloudtrail
WHERE eventSource = 'rds.amazonaws.com'
  AND eventName IN ('ModifyDBInstance', 'ModifyDBCluster')
  AND json_extract(requestParameters, '$.masterUserPassword') IS NOT NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
