SELECT * FROM cloudtrail
WHERE eventSource = 'cloudtrail.amazonaws.com'
  AND eventName IN ('CreateTrail', 'UpdateTrail', 'DeleteTrail', 'StartLogging', 'StopLogging')
