// QFS for Spark in DCSpark containers, with data locality (docs/qfs.md, "Data locality").
//
// QFS names a chunk's location by its chunkserver, that is by the pool address of the host it runs
// on; Spark's executors in DCSpark run in containers and register with their worker's name
// (spark-worker-<cluster>-<i>). Spark's scheduler compares the two as strings, so without help no
// task is ever NODE_LOCAL. This file system is QFS's own (it extends QuantcastFileSystem and changes
// nothing else); its block locations name, for every host holding a chunk, the cluster's workers on
// that host, as listed by DCM at submit time in fs.qfs.dcspark.hostMap:
//     <pool address>=<worker name>[,<worker name>...][;<pool address>=...]
// A host not in the map keeps its own name (such a chunk is then simply not local to any worker).
//
// Compiled in the image build against the Spark and QFS jars of the image, with the Scala compiler
// that Spark ships (no JDK in the image), into $SPARK_HOME/jars/dcspark-qfs-locality.jar.
package org.dcspark.qfs

import org.apache.hadoop.fs.{BlockLocation, FileStatus}

import com.quantcast.qfs.hadoop.QuantcastFileSystem

object HostMap {
  val Key = "fs.qfs.dcspark.hostMap"

  /** "10.0.0.11=w1,w2;10.0.0.12=w3" -> Map(10.0.0.11 -> [w1, w2], 10.0.0.12 -> [w3]); bad entries are skipped. */
  def parse(text: String): Map[String, Array[String]] =
    text.split(";").toList.flatMap { entry =>
      entry.split("=", 2) match {
        case Array(host, names) if host.trim.nonEmpty =>
          val workers = names.split(",").map(_.trim).filter(_.nonEmpty)
          if (workers.isEmpty) Nil else List(host.trim -> workers)
        case _ => Nil
      }
    }.toMap

  /** The same block, its hosts replaced by the workers on them (hosts not in the map stay). */
  def rename(block: BlockLocation, hosts: Map[String, Array[String]]): BlockLocation = {
    val names = block.getHosts.toList.flatMap(host => hosts.getOrElse(host, Array(host)).toList).distinct.toArray
    new BlockLocation(names, names, block.getOffset, block.getLength)
  }
}

class LocalityMappedFileSystem extends QuantcastFileSystem {
  override def getFileBlockLocations(file: FileStatus, start: Long, len: Long): Array[BlockLocation] = {
    val blocks = super.getFileBlockLocations(file, start, len)
    val hosts = HostMap.parse(Option(getConf).map(_.get(HostMap.Key, "")).getOrElse(""))
    if (blocks == null || hosts.isEmpty) blocks else blocks.map(block => HostMap.rename(block, hosts))
  }
}
