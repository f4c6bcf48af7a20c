import type { Document } from "bson";

/** A read-only view: `viewOn` + `pipeline`, with the create options kept verbatim. */
export class View {
  constructor(
    public db: string,
    public name: string,
    public options: Document,
  ) {}

  get viewOn(): string {
    return this.options.viewOn as string;
  }

  get pipeline(): Document[] {
    return (this.options.pipeline as Document[] | undefined) ?? [];
  }
}
