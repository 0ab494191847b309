SELECT * FROM cloudtrail
WHERE eventSource = 'config.amazonaws.com'
  AND eventName IN ('StopConfigurationRecorder', 'DeleteDeliveryChannel', 'PutDeliveryChannel', 'PutConfigurationRecorder')
