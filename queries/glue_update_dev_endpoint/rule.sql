SELECT * FROM cloudtrail
WHERE eventSource = 'glue.amazonaws.com'
  AND eventName = 'UpdateDevEndpoint'
  AND (json_extract_string(requestParameters, '$.publicKey') IS NOT NULL OR json_extract(requestParameters, '$.addPublicKeys') IS NOT NULL)
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
