SELECT * FROM cloudtrail
WHERE eventSource = 'rds.amazonaws.com'
  AND eventName IN ('ModifyDBSnapshotAttribute', 'ModifyDBClusterSnapshotAttribute')
  AND json_extract_string(requestParameters, '$.attributeName') = 'restore'
  AND json_array_length(json_extract(requestParameters, '$.valuesToAdd')) > 0
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
