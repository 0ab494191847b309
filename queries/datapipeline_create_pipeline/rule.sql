SELECT * FROM cloudtrail
WHERE eventSource = 'datapipeline.amazonaws.com'
  AND eventName IN ('CreatePipeline', 'PutPipelineDefinition')
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
